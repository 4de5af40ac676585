"""The composition root: the only package that knows every other. The `mes` command (cli), the HTTP
application that mounts every router (api), the demo plant and the whole-plant runner."""
