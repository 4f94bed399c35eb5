/* SPDX-License-Identifier: MIT */
/*
 * stitch-check MODEL…: exhaustive explicit-state checker for code-patching
 * protocols.  Exit status: 0 every model SAFE, 1 some model UNSAFE, 2 a
 * model is malformed (or the command line is).  See docs/checker.md.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explore.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: stitch-check [--json] [--stats] [--enumerate] [--promela] [--expect] MODEL…\n"
		   "  --json       machine-readable results (one JSON object per line)\n"
		   "  --stats      states explored, transitions and states/second\n"
		   "  --enumerate  classify every reader schedule (one-reader models), like seed 004's table\n"
		   "  --promela    print a Promela translation (register-free models) for spin instead of checking\n"
		   "  --expect     compare each verdict with the model's `# expect:` line; exit 0 iff all match\n"
		   "exit status: 0 all SAFE (or all as expected), 1 an UNSAFE model (or a mismatch), 2 malformed\n");
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},    {"stats", no_argument, NULL, 's'},
		{"enumerate", no_argument, NULL, 'e'}, {"promela", no_argument, NULL, 'p'},
		{"expect", no_argument, NULL, 'x'},  {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	bool json = false, stats = false, enumerate = false, promela = false, expect = false;
	int c, worst = 0;

	while ((c = getopt_long(argc, argv, "jsepxh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 's':
			stats = true;
			break;
		case 'e':
			enumerate = true;
			break;
		case 'p':
			promela = true;
			break;
		case 'x':
			expect = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind == argc) {
		usage(stderr);
		return 2;
	}
	for (int i = optind; i < argc; i++) {
		struct model *m = calloc(1, sizeof *m);
		int rc = model_parse(argv[i], m);
		if (rc) {
			if (json) {
				printf("{\"model\":");
				json_str(argv[i]);
				printf(",\"verdict\":\"MALFORMED\"}\n");
			}
			worst = 2;
			model_free(m);
			free(m);
			continue;
		}
		if (promela) {
			rc = promela_emit(m, stdout);
			if (rc > worst)
				worst = rc;
			model_free(m);
			free(m);
			continue;
		}
		if (enumerate) {
			rc = enumerate_model(m, json);
			if (rc > worst)
				worst = rc;
			model_free(m);
			free(m);
			continue;
		}
		struct result res;
		check_model(m, &res);
		const char *verdict = res.unsafe ? "UNSAFE" : "SAFE";
		double rate = res.seconds > 0 ? (double)res.states / res.seconds : 0;
		bool mismatch = expect && strcmp(m->expect, verdict);
		if (json) {
			printf("{\"model\":");
			json_str(argv[i]);
			printf(",\"name\":");
			json_str(m->name);
			printf(",\"verdict\":\"%s\",\"expected\":", verdict);
			json_str(m->expect);
			printf(",\"states\":%llu,\"transitions\":%llu,\"seconds\":%.6f,\"states_per_second\":%.0f",
			       (unsigned long long)res.states, (unsigned long long)res.transitions, res.seconds, rate);
			if (res.unsafe) {
				printf(",\"violation\":");
				json_str(res.violation);
				printf(",\"counterexample\":[");
				for (int t = 0; t < res.ntrace; t++) {
					printf("%s", t ? "," : "");
					json_str(res.trace[t].text);
				}
				printf("]");
			}
			printf("}\n");
		} else {
			printf("%s: %s", argv[i], verdict);
			if (expect)
				printf(" (expected %s%s)", m->expect[0] ? m->expect : "nothing",
				       mismatch ? ": MISMATCH" : "");
			printf("\n");
			if (stats)
				printf("  %llu states, %llu transitions, %.4f s, %.0f states/s\n",
				       (unsigned long long)res.states, (unsigned long long)res.transitions, res.seconds,
				       rate);
			if (res.unsafe) {
				printf("  violation: %s\n  shortest counterexample (%d steps):\n", res.violation,
				       res.ntrace);
				for (int t = 0; t < res.ntrace; t++)
					printf("  %3d. %s\n", t + 1, res.trace[t].text);
			}
		}
		if (expect) {
			if ((mismatch || !m->expect[0]) && worst < 1)
				worst = 1;
		} else if (res.unsafe && worst < 1) {
			worst = 1;
		}
		result_free(&res);
		model_free(m);
		free(m);
	}
	return worst;
}
