/* A CPython extension that needs nothing newer than GLIBC_2.2.5: it loads under any glibc. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *length(PyObject *self, PyObject *args) {
    const char *text;
    if (!PyArg_ParseTuple(args, "s", &text))
        return NULL;
    return PyLong_FromSize_t(strlen(text));
}

static PyMethodDef methods[] = {
    {"length", length, METH_VARARGS, "The length of a string, by strlen."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "ext_clean", NULL, -1, methods};

PyMODINIT_FUNC PyInit_ext_clean(void) { return PyModule_Create(&module); }
