/* cli/events.h — `citrus events publish|tail|lag`: publish events, print a
 * topic's events without consuming them, and the consumer groups' lag
 * (/v1/topics, /v1/consumers). */
#ifndef CITRUS_CLI_EVENTS_H
#define CITRUS_CLI_EVENTS_H

/* argv[0] is "events". Returns the process exit code (cli_util.h). */
int cli_events_main(int argc, char **argv);

#endif
