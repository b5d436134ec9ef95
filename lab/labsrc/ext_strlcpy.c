/* A CPython extension linked against glibc 2.41's libc.so.6 that calls strlcpy, new in glibc 2.38:
 * it needs strlcpy@GLIBC_2.38, which neither glibc 2.31 nor the machine's glibc 2.36 define. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

size_t strlcpy(char *dst, const char *src, size_t size); /* declared by hand: not in glibc 2.36 headers */

static PyObject *copy(PyObject *self, PyObject *args) {
    const char *text;
    char buffer[8];
    if (!PyArg_ParseTuple(args, "s", &text))
        return NULL;
    strlcpy(buffer, text, sizeof buffer);
    return PyUnicode_FromString(buffer);
}

static PyMethodDef methods[] = {
    {"copy", copy, METH_VARARGS, "Copy at most 7 characters of a string with strlcpy."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "ext_strlcpy", NULL, -1, methods};

PyMODINIT_FUNC PyInit_ext_strlcpy(void) { return PyModule_Create(&module); }
