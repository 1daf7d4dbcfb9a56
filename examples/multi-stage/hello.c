/* The program the multi-stage example compiles: greets its argument (or "world"). Built with
 * `gcc -static`, so the scratch stage needs nothing but the binary. */
#include <stdio.h>

int main(int argc, char **argv)
{
    const char *who = argc > 1 ? argv[1] : "world";
    printf("hello, %s, from a static C binary built by berth\n", who);
    return 0;
}
