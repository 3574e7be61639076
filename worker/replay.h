/* `burstguard replay`: a backtest over historical input topics.
 *
 * Reads every partition of the input topics with its own assignment (never a
 * group member, never a commit), seeks to --from, stops at --to or at each
 * partition's end as of the start, runs the same codec, engine and policy as
 * the worker with an exact event-time merge per task, and writes what the
 * worker would have published to files (or to a backtest topic), plus a
 * report. See README "Backtesting" for the file formats and rules. */
#ifndef BG_REPLAY_H
#define BG_REPLAY_H

int bg_replay_main(int argc, char **argv);

#endif
