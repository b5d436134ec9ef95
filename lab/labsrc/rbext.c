/* A Ruby C extension that starts a thread: built by a glibc >= 2.34 gcc, it needs
 * pthread_create@GLIBC_2.34, which the lab ruby's glibc 2.31 does not define.
 * The few Ruby C API functions used are declared by hand (VALUE is an uintptr_t in Ruby 2.7). */
#include <pthread.h>
#include <stdint.h>

typedef uintptr_t VALUE;
VALUE rb_define_module(const char *name);
void rb_define_module_function(VALUE module, const char *name, VALUE (*func)(), int argc);
VALUE rb_int2inum(intptr_t n);

static void *answer(void *arg) {
    *(long *)arg = 42;
    return 0;
}

static VALUE run(VALUE self) {
    long result = 0;
    pthread_t thread;
    if (pthread_create(&thread, 0, answer, &result) == 0)
        pthread_join(thread, 0);
    return rb_int2inum(result);
}

void Init_rbext(void) {
    VALUE module = rb_define_module("Rbext");
    rb_define_module_function(module, "run", run, 0);
}
