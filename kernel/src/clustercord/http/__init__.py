"""The kernel's one HTTP service: plugins' routes under ``/plugins/<name>/``.

- :mod:`.settings`: ``[http]`` of the configuration (listen address, public URL, TLS, caps);
- :mod:`.tls`: the certificate: the configured one, or a self-signed one kept in the data
  directory (key 0600);
- :mod:`.service`: the aiohttp server; each request reaches its plugin through the door.
"""
