"""Environment fingerprint: what a result depends on, recorded with every run."""
import importlib.util
import os
import platform
import sys

import numpy as np

from netparity.numerics import precision_flags


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _numpy_blas():
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception as e:  # the layout of show_config changes between releases
        return f"unknown ({type(e).__name__})"


def fingerprint():
    fp = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "numpy_blas": _numpy_blas(),
    }
    if importlib.util.find_spec("torch"):
        import torch
        fp["torch"] = torch.__version__
        fp["torch_threads"] = torch.get_num_threads()
        fp["torch_mkldnn"] = torch.backends.mkldnn.is_available()
        cfg = torch.__config__.show()
        fp["torch_blas"] = (cfg.split("BLAS_INFO=", 1)[1].split(",", 1)[0]
                            if "BLAS_INFO=" in cfg else "unknown")
        fp["torch_cuda"] = torch.version.cuda
        fp["cuda_device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    if importlib.util.find_spec("jax"):
        import jax
        import jaxlib
        fp["jax"] = jax.__version__
        fp["jaxlib"] = jaxlib.__version__
        fp["jax_devices"] = [str(d) for d in jax.devices()]
    fp["precision_flags"] = precision_flags()
    from netparity.distributed import environment
    fp["data_parallel"] = environment()  # the engines of `netparity check --data-parallel N`
    return fp
