"""Dense → network: TT-SVD, nearest Kronecker sums, model compression, QIANets' pruning and
annealed factorisation, and fine-tuning."""
