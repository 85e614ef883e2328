/* cmd_demo.c: placeholder replaced by its implementation in this session. */
#include "config.h"
#include "cli/commands.h"
#include "core/error.h"
int
cmd_demo(int argc, char **argv)
{
	(void)argc;
	return cli_usage_error(NULL, "%s is not built yet", argv[0]);
}
