"""The service's workflows, shared by the API's routers, the CLI and the jobs (which call them,
never the other way round): `tryon.services.products` (a shop's products)."""
