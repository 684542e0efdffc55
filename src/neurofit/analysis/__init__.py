"""Analysis tools; `rate` holds the Neuromatch rate-model computations, `rate_plots` their figures."""
