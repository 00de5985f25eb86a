dist_man_MANS += docs/surplus-plugin.7 docs/surplus.conf.5 docs/surplus.1
EXTRA_DIST += docs/benchmarks.md
dist_man_MANS += docs/surplus-bundle.5 docs/surplusd.8 docs/surplus-plugin-check.1
EXTRA_DIST += docs/openapi.yaml
