"""Dataset tools: catalog and face photos to aligned, labelled training zips."""
