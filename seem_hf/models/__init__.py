"""The seem_hf models, one folder each in transformers' layout."""
