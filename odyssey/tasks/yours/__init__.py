"""Tasks of your own, named by a study file's option `source`: "files" reads your sequences from an
.npz, a CSV/Parquet long table or a folder of them (files, longtable, places); "module:function"
imports a factory of yours (sources).
"""

from .sources import FILES, factory_for, identity, path_options

__all__ = ["FILES", "factory_for", "identity", "path_options"]
