# Bundles: check, extract, create.
