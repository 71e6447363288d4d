"""Streamlit workbench: `streamlit run ui/app.py` (or `aicd up`). Talks to the backend over HTTP only."""
