"""Small helpers with no app state, shared by models and services."""
