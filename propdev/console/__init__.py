"""The supervision console's page, script and style sheet (served by
``propdev.http.routes.console``); no outside assets."""
