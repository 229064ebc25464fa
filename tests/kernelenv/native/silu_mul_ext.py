"""An honest native candidate: a C extension compiled inside the sandbox at import (the way load_inline
builds one), called on the tensors' data pointers. The harness counts calls into an extension built in the
attempt's own directory as the candidate's kernel."""

import importlib.util
import subprocess
import sysconfig
from pathlib import Path

import torch
from torch import nn

C = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

static PyObject *silu_mul(PyObject *self, PyObject *args) {
    unsigned long long gu, out;
    long long rows, inter;
    if (!PyArg_ParseTuple(args, "KKLL", &gu, &out, &rows, &inter)) return NULL;
    const float *x = (const float *)(uintptr_t)gu;
    float *y = (float *)(uintptr_t)out;
    for (long long r = 0; r < rows; r++)
        for (long long i = 0; i < inter; i++) {
            float g = x[r * 2 * inter + i], u = x[r * 2 * inter + inter + i];
            y[r * inter + i] = g / (1.0f + expf(-g)) * u;
        }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {{"silu_mul", silu_mul, METH_VARARGS, "silu(gate) * up, float32"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "silu_mul_native", NULL, -1, methods};
PyMODINIT_FUNC PyInit_silu_mul_native(void) { return PyModule_Create(&mod); }
"""

_src = Path("silu_mul_native.c")
_src.write_text(C)
_so = Path("silu_mul_native" + sysconfig.get_config_var("EXT_SUFFIX"))
subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-I", sysconfig.get_paths()["include"], str(_src), "-o", str(_so), "-lm"],
               check=True)
_spec = importlib.util.spec_from_file_location("silu_mul_native", _so)
native = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(native)


class ModelNew(nn.Module):
    def forward(self, gate_up):
        assert gate_up.is_contiguous() and gate_up.dtype == torch.float32 and not gate_up.is_cuda
        rows, two_i = gate_up.shape
        out = torch.empty(rows, two_i // 2, dtype=torch.float32)
        native.silu_mul(gate_up.data_ptr(), out.data_ptr(), rows, two_i // 2)
        return out
