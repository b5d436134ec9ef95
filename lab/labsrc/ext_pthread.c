/* A CPython extension that starts a thread: built by a glibc >= 2.34 gcc, pthread_create binds to
 * pthread_create@GLIBC_2.34 in libc.so.6, which glibc 2.31 does not define. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>

static void *answer(void *arg) {
    *(long *)arg = 42;
    return NULL;
}

static PyObject *run(PyObject *self, PyObject *args) {
    long result = 0;
    pthread_t thread;
    if (pthread_create(&thread, NULL, answer, &result) != 0 || pthread_join(thread, NULL) != 0) {
        PyErr_SetString(PyExc_OSError, "pthread_create failed");
        return NULL;
    }
    return PyLong_FromLong(result);
}

static PyMethodDef methods[] = {
    {"run", run, METH_NOARGS, "Run a thread that returns 42."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "ext_pthread", NULL, -1, methods};

PyMODINIT_FUNC PyInit_ext_pthread(void) { return PyModule_Create(&module); }
