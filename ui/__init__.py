"""The tryon storefront: a Streamlit app (`ui/app.py`) that talks to the tryon API over HTTP only.

Pages: Shop (catalog), Try-on (selfie, edits, composite), Designer studio (variants, catalog,
garment transfer). Run it with `tryon up` (API + UI), or `streamlit run ui/app.py` against a running
API (TRYON_UI_API_URL). Nothing here imports `tryon`.
"""
