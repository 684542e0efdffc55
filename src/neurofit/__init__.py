"""neurofit: fit neuron models to recordings."""
__version__ = "0.1.0"
