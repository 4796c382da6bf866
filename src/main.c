/* main.c — the citrus binary: everything happens in cli_main(). */
#include "cli/cli.h"

int main(int argc, char **argv, char **envp)
{
    return cli_main(argc, argv, envp);
}
