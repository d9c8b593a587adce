"""Run the platform: `python run.py` (development) or gunicorn 'run:app'."""

from app import create_app

app = create_app()

if __name__ == "__main__":  # the development server (not `flask ...`, which imports this module too)
    from app import sweep_temporary_uploads

    sweep_temporary_uploads(app)
    app.run(host="127.0.0.1", port=8080)
