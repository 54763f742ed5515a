"""The interactive web explorer: a local JSON API (``app.py``) over ptheta's models, and a page."""
