"""The circuit stack (Chen et al.): circuit declarations and the Givens plan (torch-free), the
Givens executor and layers, qubit-circuit layers, amplitude encoding and parameter attacks."""
