/* cli/dlq.h — `citrus dlq ls|replay`: a topic's dead letters and their
 * replay (/v1/dlq/{topic}). */
#ifndef CITRUS_CLI_DLQ_H
#define CITRUS_CLI_DLQ_H

/* argv[0] is "dlq". Returns the process exit code (cli_util.h). */
int cli_dlq_main(int argc, char **argv);

#endif
