// A C++ CPython extension: its libstdc++.so.6 comes from the machine (gcc 12 on glibc 2.36), which
// needs GLIBC_2.3x versions that glibc 2.31 lacks: a transitive conflict, through libstdc++.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <iostream>
#include <sstream>
#include <string>

static PyObject *greet(PyObject *self, PyObject *args) {
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name))
        return NULL;
    std::ostringstream text;
    text << "hello, " << std::string(name);
    std::clog.flush();
    return PyUnicode_FromString(text.str().c_str());
}

static PyMethodDef methods[] = {
    {"greet", greet, METH_VARARGS, "Greet by name, through std::string and iostreams."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "ext_cxx", NULL, -1, methods};

PyMODINIT_FUNC PyInit_ext_cxx(void) { return PyModule_Create(&module); }
