/* `burstguard gen`: the labeled traffic generator of bench/gen.c as a
 * command: Avro events in the Confluent framing to Kafka or to files, the
 * ground-truth labels (report.h format) and the policy to judge them by. */
#ifndef BG_GEN_CMD_H
#define BG_GEN_CMD_H

int bg_gen_main(int argc, char **argv);

#endif
