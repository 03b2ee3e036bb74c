"""`gglops serve`: the registry alias's verified ONNX artifact behind Ray Serve over HTTP.

`contract` holds the HTTP models and the image decoding, `release` the verified download,
`follow` the session that tracks the alias, `app` the Ray Serve deployment.
"""
