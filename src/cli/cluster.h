/* cli/cluster.h — `citrus cluster status`. */
#ifndef CITRUS_CLI_CLUSTER_H
#define CITRUS_CLI_CLUSTER_H

/* argv[0] is "cluster". Returns the exit code. */
int cli_cluster_main(int argc, char **argv);

#endif
