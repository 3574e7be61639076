/* test_state_takeover in exactly_once mode (see there). */
#define TAKEOVER_GUARANTEE "exactly_once"
#define TAKEOVER_EXPECT_SKIPS 1
#include "test_state_takeover.c"
