"""The workflow layer: the study config (``study``) and one section module per config section
(fit, infer, rate, reduction), provenance manifests, the audit, and the helpers the Snakefile imports
(``snakefile``). The JSON-Schema of the config is ``schemas/config.schema.yaml``."""
