"""Honest candidates for the shipped tasks: small Triton kernels, one op per file, each defining ModelNew."""
