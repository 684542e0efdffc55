"""Code generation: integrators (update maps), the kernel specification, printers, the numpy and C
backends, forward sensitivities for exact gradients and counter-based random streams. Called through
``neurofit.simulate``; imports only ``equations`` and ``units`` below it."""
