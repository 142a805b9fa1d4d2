"""What the rendered app's serving.py reads of app/body_cap.py (the Flask render's value), for the Flask baseline,
which runs on the same server: gunicorn's asyncio worker and serving.Buffered."""

MAX_BODY_BYTES = 16 * 1024
