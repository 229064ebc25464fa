"""forbidden_op: a native extension built in the sandbox (as load_inline would build one) that links a vendor
BLAS (the OpenBLAS numpy ships) and calls it. The extension is the candidate's own code, so its calls count as
own launches; the harness reads the built file's dynamic section and undefined symbols."""

import glob
import importlib.util
import os
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
from torch import nn

C = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
extern float scipy_cblas_sdot64_(long long n, const float *x, long long incx, const float *y, long long incy);

static PyObject *dot(PyObject *self, PyObject *args) {
    unsigned long long x;
    long long n;
    if (!PyArg_ParseTuple(args, "KL", &x, &n)) return NULL;
    const float *p = (const float *)(uintptr_t)x;
    return PyFloat_FromDouble(scipy_cblas_sdot64_(n, p, 1, p, 1));
}

static PyMethodDef methods[] = {{"dot", dot, METH_VARARGS, "sum of squares through BLAS"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "blas_native", NULL, -1, methods};
PyMODINIT_FUNC PyInit_blas_native(void) { return PyModule_Create(&mod); }
"""

_blas = glob.glob(os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs", "*openblas*.so"))[0]
_src = Path("blas_native.c")
_src.write_text(C)
_so = Path("blas_native" + sysconfig.get_config_var("EXT_SUFFIX"))
subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-I", sysconfig.get_paths()["include"], str(_src), "-o", str(_so),
                _blas, f"-Wl,-rpath,{os.path.dirname(_blas)}"], check=True)
_spec = importlib.util.spec_from_file_location("blas_native", _so)
native = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(native)


class ModelNew(nn.Module):
    def __init__(self, eps=1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, x, weight):
        return x
