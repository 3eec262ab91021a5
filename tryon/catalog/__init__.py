"""Catalog photos and their labels, shared by the dataset tools and the service.

- `tryon.catalog.photos`: one product photo -> its view (on-model / flat) and a normalized square
  image (pose-normalized models, centred flats), or the reason there is none.
- `tryon.catalog.groups`: the catalog's raw values (articleType, baseColour) folded into the fashion
  model's label groups (articleGroup, colourGroup).

`tryon dataset fashion` (datasets.fashion) and the shop's product import (tryon.services.products)
both go through these. Importing this package loads nothing heavy.
"""
