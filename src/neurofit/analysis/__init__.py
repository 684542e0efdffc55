"""Analysis tools; `rate` holds the Neuromatch rate-model computations, `rate_plots` their figures,
`rate_study` the simulations through the core simulator, the fit and the study's artefacts."""
