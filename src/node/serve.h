/* node/serve.h — `citrus dev` and `citrus server`: run the API server until
 * SIGINT or SIGTERM. */
#ifndef CITRUS_NODE_SERVE_H
#define CITRUS_NODE_SERVE_H

#include <stdbool.h>

/* argv[0] is "dev" or "server". Returns the process exit code. */
int cli_serve_main(int argc, char **argv, char **envp);

#endif
