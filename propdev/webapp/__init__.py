"""The resident web app's page, script and style sheet (served by
``propdev.http.routes.webapp`` at ``/app/``); no outside assets."""
