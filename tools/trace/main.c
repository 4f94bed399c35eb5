/* SPDX-License-Identifier: MIT */
/*
 * stitch-trace: record a program's function calls with libstitch-agent.so,
 * control the recording while it runs, and show what was recorded
 * (docs/stitch-trace.md).
 *
 * Exit status: 0 done; 1 failed (a message says why); 2 usage error.
 * `record` exits with the program's status (128+N if killed by signal N).
 */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attach.h"
#include "ctl.h"
#include "ctlpath.h"
#include "output.h"
#include "reader.h"

#ifndef STITCH_TRACE_CFLAGS
#define STITCH_TRACE_CFLAGS "(see pkg-config --variable=trace_cflags stitch)"
#endif
#ifndef STITCH_AGENT_INSTALL_PATH
#define STITCH_AGENT_INSTALL_PATH ""
#endif

#define DEFAULT_DIR "stitch-trace.data"

static const char *prog_name = "stitch-trace";

static void usage_main(FILE *out)
{
	fprintf(out,
		"usage: stitch-trace COMMAND [OPTIONS] ...\n"
		"\n"
		"  record [-F GLOB]... [-N GLOB]... [--graph] [--depth N] [-o DIR] -- PROG [ARGS...]\n"
		"                         run PROG with the tracing agent, record into DIR\n"
		"  live PID|DIR CMD       control a recording: enable GLOB, disable GLOB,\n"
		"                         graph on|off, pause, resume, status\n"
		"  replay [DIR]           call tree per thread with durations\n"
		"  report [DIR]           per function: total and self time, calls\n"
		"  dump [DIR] --chrome|--folded|--ftrace|--tree\n"
		"                         Chrome trace JSON, folded stacks, ftrace text, canonical tree\n"
		"  flame [DIR] -o OUT.svg flame graph\n"
		"  attach PID [-F GLOB]... [-N GLOB]... [--graph] [-o DIR]\n"
		"                         trace a running process (x86-64, ptrace); then\n"
		"                         `live PID detach` restores its code\n"
		"\n"
		"DIR defaults to ./" DEFAULT_DIR ".  `stitch-trace COMMAND --help` for details.\n"
		"Programs are traced where built with: %s\n",
		STITCH_TRACE_CFLAGS);
}

#define STR_(x) #x
#define STR(x) STR_(x)

static int usage_error(const char *cmd, const char *fmt, const char *arg)
{
	fprintf(stderr, "%s %s: ", prog_name, cmd);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry '%s %s --help'.\n", prog_name, cmd);
	return 2;
}

/*
 * getopt_long's '?' (unknown option) or ':' (missing argument; the option
 * strings start with ':' so getopt prints nothing itself: it used to print
 * its own line before ours, two messages for one mistake).
 */
static int option_error(const char *cmd, int c, char **argv)
{
	char shown[64];
	/* A missing argument's option, or an unknown long one, is the word
	 * getopt has just moved past; an unknown short one may sit inside a
	 * cluster (-gx), so it is named by its letter. */
	if (c == ':' || optopt == 0)
		snprintf(shown, sizeof shown, "%s", optind > 0 ? argv[optind - 1] : "?");
	else
		snprintf(shown, sizeof shown, "-%c", optopt);
	return usage_error(cmd, c == ':' ? "option '%s' needs an argument" : "unknown option '%s'", shown);
}

static int is_help(const char *s)
{
	return strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0;
}

/* ---- record ----------------------------------------------------------- */

static const char record_help[] =
	"usage: stitch-trace record [OPTIONS] -- PROG [ARGS...]\n"
	"Run PROG with libstitch-agent.so preloaded and record its function calls.\n"
	"\n"
	"  -F, --filter GLOB    trace functions matching GLOB (repeatable; default all)\n"
	"  -N, --notrace GLOB   never trace functions matching GLOB (repeatable)\n"
	"  -g, --graph          record returns too (call tree, durations)\n"
	"  -D, --depth N        with --graph: only calls nested at most N deep\n"
	"  -o, --output DIR     where to write trace-<pid>.dat files (default " DEFAULT_DIR ");\n"
	"                       an earlier recording's trace files there are replaced\n"
	"      --fork MODE      follow: a forked child records into its own file (default);\n"
	"                       stop: it records nothing\n"
	"      --buffer N       events per thread ring, a power of two (default 262144)\n"
	"      --block          a thread whose ring is full waits for the writer\n"
	"                       (no event lost; the program slows down instead)\n"
	"      --no-control     no control socket (stitch-trace live cannot reach it)\n"
	"\n"
	"Exit status: PROG's (128+N if killed by signal N); 1 if it could not be started.\n"
	"Environment: STITCH_TRACE_AGENT (the agent's path), STITCH_TRACE_EMULATOR\n"
	"(run PROG under it, e.g. \"qemu-aarch64 -L /usr/aarch64-linux-gnu\").\n";

/* The agent to preload (record), or its variant for dlopen (attach):
 * libstitch-agent-dl.so, see tools/trace/CMakeLists.txt. */
static int find_agent_named(char *buf, size_t size, const char *name)
{
	const char *env = getenv("STITCH_TRACE_AGENT");
	if (env && *env) {
		/* the variant next to an agent given by path */
		snprintf(buf, size, "%s", env);
		char *slash = strrchr(buf, '/');
		if (strcmp(name, "libstitch-agent.so") != 0 && slash)
			snprintf(slash + 1, size - (size_t)(slash + 1 - buf), "%s", name);
		return access(buf, R_OK) == 0 ? 0 : -1;
	}
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			const char *rel[] = { "/", "/../lib/stitch/", "/../lib64/stitch/" };
			for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) {
				snprintf(buf, size, "%s%s%s", self, rel[i], name);
				if (access(buf, R_OK) == 0)
					return 0;
			}
		}
	}
	snprintf(buf, size, "%s", STITCH_AGENT_INSTALL_PATH);
	char *slash = strrchr(buf, '/');
	if (slash)
		snprintf(slash + 1, size - (size_t)(slash + 1 - buf), "%s", name);
	return buf[0] && access(buf, R_OK) == 0 ? 0 : -1;
}

static int find_agent(char *buf, size_t size)
{
	return find_agent_named(buf, size, "libstitch-agent.so");
}

/* Is process pid alive with the agent loaded? */
static int process_has_agent(long pid)
{
	char path[64], line[4096];
	snprintf(path, sizeof path, "/proc/%ld/maps", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	int found = 0;
	while (!found && fgets(line, sizeof line, f))
		found = strstr(line, "libstitch-agent") != NULL;
	fclose(f);
	return found;
}

/* An empty DIR, or one holding only an earlier recording (whose trace
 * files are removed): never delete anything else.  *created: DIR is new.
 *
 * DIR stays locked (flock on the directory, exclusive) until this
 * stitch-trace exits: a recording belongs to its record command until that
 * has read it back and printed the totals, not only while the program runs.
 * Checking for a live agent alone left a window: between the program's exit
 * and the first record's read-back, a second record found no agent,
 * deleted the finished file, and the first failed on an empty directory
 * (CI, aarch64 under load).  The agent check stays for what has no
 * stitch-trace waiting on it: a program attached to, or one whose record
 * was killed. */
static int prepare_dir(const char *cmd, const char *dir, int *created)
{
	*created = mkdir(dir, 0755) == 0;
	if (!*created && errno != EEXIST) {
		fprintf(stderr, "stitch-trace %s: cannot create %s: %s\n", cmd, dir, strerror(errno));
		return -1;
	}
	static int lock_fd = -1; /* kept open until exit: it holds the lock */
	lock_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lock_fd < 0) {
		fprintf(stderr, "stitch-trace %s: %s: %s\n", cmd, dir, strerror(errno));
		return -1;
	}
	if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK)
			fprintf(stderr, "stitch-trace: %s is being recorded into by another stitch-trace, still running; "
					"choose another directory\n",
				dir);
		else
			fprintf(stderr, "stitch-trace %s: cannot lock %s: %s\n", cmd, dir, strerror(errno));
		close(lock_fd);
		lock_fd = -1;
		return -1;
	}
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "stitch-trace %s: %s: %s\n", cmd, dir, strerror(errno));
		return -1;
	}
	struct dirent *de;
	/* A recording still being written (its process alive with the agent
	 * loaded): refused, not deleted under it (a second record into the
	 * same DIR silently destroyed the first's). */
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (strncmp(de->d_name, "trace-", 6) != 0 || n <= 10 || strcmp(de->d_name + n - 4, ".dat") != 0)
			continue;
		long pid = strtol(de->d_name + 6, NULL, 10);
		if (pid > 0 && process_has_agent(pid)) {
			fprintf(stderr, "stitch-trace: %s is being recorded into by process %ld, still running; choose "
					"another directory\n",
				dir, pid);
			closedir(d);
			return -1;
		}
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (strncmp(de->d_name, "trace-", 6) == 0 && n > 10 && strcmp(de->d_name + n - 4, ".dat") == 0) {
			char p[PATH_MAX];
			snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
			unlink(p);
		}
	}
	closedir(d);
	/* Can the agent write here?  A read-only or full file system otherwise
	 * showed only after the program had run, as "nothing was recorded (is
	 * PROG dynamically linked?)".  A real file and a page of data: a full
	 * disk may still take an empty file. */
	char probe[PATH_MAX];
	snprintf(probe, sizeof probe, "%s/.stitch-trace-probe-%d", dir, (int)getpid());
	int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int err = fd < 0 ? errno : 0;
	if (fd >= 0) {
		static char page[4096];
		ssize_t w = write(fd, page, sizeof page);
		err = w < 0 ? errno : (size_t)w < sizeof page ? ENOSPC : 0;
		if (close(fd) != 0 && !err)
			err = errno;
		unlink(probe);
	}
	if (err) {
		fprintf(stderr, "stitch-trace %s: cannot write in %s: %s\n", cmd, dir, strerror(err));
		return -1;
	}
	return 0;
}

/*
 * Write errors the agents of this record's processes left in the control
 * directory (agent.c, report_write_error): printed, and removed.  Returns
 * how many there were.
 */
static int report_write_errors(void)
{
	char dir[200], prefix[64];
	const char *why;
	if (stitch_trace_ctl_dir(dir, sizeof dir, 0, &why) != 0)
		return 0;
	snprintf(prefix, sizeof prefix, "werr-%d-", (int)getpid());
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
			continue;
		char path[PATH_MAX], msg[256] = "";
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			ssize_t k = read(fd, msg, sizeof msg - 1);
			msg[k > 0 ? k : 0] = '\0';
			close(fd);
		}
		unlink(path);
		fprintf(stderr, "stitch-trace record: output of process %s could not be written: %s%s\n",
			de->d_name + strlen(prefix), msg[0] ? msg : "(error unknown)",
			"; what was written before is kept, the events after it are counted as lost");
		n++;
	}
	closedir(d);
	return n;
}

static int append(char *buf, size_t size, const char *glob, int negate)
{
	size_t n = strlen(buf);
	int w = snprintf(buf + n, size - n, "%s%s%s", n ? " " : "", negate ? "!" : "", glob);
	return w < 0 || (size_t)w >= size - n ? -1 : 0;
}

/* What record and attach both take: -F/-N globs, --graph, --depth, -o. */
struct select_opts {
	char filter[8192]; /* "glob !glob ...", as the agent's STITCH_TRACE_FILTER */
	char depth[32];    /* empty: no limit */
	const char *dir;
	int graph;
	int nrules;
};

/* Handles option c of cmd if it is one of struct select_opts': 0 when
 * taken, a usage error's exit code when its argument is bad, -1 when c is
 * not one of them. */
static int select_opt(const char *cmd, int c, struct select_opts *o)
{
	switch (c) {
	case 'F':
	case 'N':
		if (!*optarg || strpbrk(optarg, " \t\n") || optarg[0] == '!')
			return usage_error(cmd, "bad glob '%s' (no spaces; use -N to exclude)", optarg);
		/* the agent's limits, said here: it would refuse them and
		 * leave the program running untraced */
		if (strlen(optarg) > CTL_MAX_ARG)
			return usage_error(cmd, "a glob longer than " STR(CTL_MAX_ARG) " characters: '%.40s...'",
					   optarg);
		if (++o->nrules > CTL_MAX_RULES)
			return usage_error(cmd, "%s", "more than " STR(CTL_MAX_RULES) " -F/-N globs");
		if (append(o->filter, sizeof o->filter, optarg, c == 'N') != 0)
			return usage_error(cmd, "%s", "too many globs");
		return 0;
	case 'g': o->graph = 1; return 0;
	case 'D': {
		char *end;
		long v = strtol(optarg, &end, 10);
		if (*end || v < 1 || v > 1000000)
			return usage_error(cmd, "--depth wants a positive number, not '%s'", optarg);
		snprintf(o->depth, sizeof o->depth, "%ld", v);
		return 0;
	}
	case 'o': o->dir = optarg; return 0;
	default: return -1;
	}
}

/* Sites recorded in any trace file of dir (SYM records). */
static int recorded_sites(const struct tr_trace *t)
{
	size_t n = 0;
	for (size_t i = 0; i < t->nproc; i++)
		n += t->proc[i].nsym;
	return n > 0;
}

static int cmd_record(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "filter", required_argument, NULL, 'F' }, { "notrace", required_argument, NULL, 'N' },
		{ "graph", no_argument, NULL, 'g' },        { "depth", required_argument, NULL, 'D' },
		{ "output", required_argument, NULL, 'o' }, { "fork", required_argument, NULL, 1 },
		{ "buffer", required_argument, NULL, 2 },   { "no-control", no_argument, NULL, 3 },
		{ "block", no_argument, NULL, 4 },
		{ "help", no_argument, NULL, 'h' },         { 0 }
	};
	struct select_opts sel = { .dir = DEFAULT_DIR };
	char buffer[32] = "";
	const char *fork_mode = "follow";
	int control = 1, block = 0, c, optrc;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+:F:N:gD:o:h", opts, NULL)) != -1) {
		if ((optrc = select_opt("record", c, &sel)) >= 0) {
			if (optrc)
				return optrc;
			continue;
		}
		switch (c) {
		case 1:
			if (strcmp(optarg, "follow") != 0 && strcmp(optarg, "stop") != 0)
				return usage_error("record", "--fork is follow or stop, not '%s'", optarg);
			fork_mode = optarg;
			break;
		case 2: {
			char *end;
			unsigned long v = strtoul(optarg, &end, 0);
			if (*end || v < 16 || (v & (v - 1)) || v > (1ul << 26))
				return usage_error("record", "--buffer wants a power of two in [16, 2^26], not '%s'", optarg);
			snprintf(buffer, sizeof buffer, "%lu", v);
			break;
		}
		case 3: control = 0; break;
		case 4: block = 1; break;
		case 'h': fputs(record_help, stdout); return 0;
		default: return option_error("record", c, argv);
		}
	}
	if (optind >= argc)
		return usage_error("record", "%s", "no program given (stitch-trace record [OPTIONS] -- PROG ARGS)");
	if (sel.depth[0] && !sel.graph)
		return usage_error("record", "%s", "--depth needs --graph (depth is known from returns)");
	char agent[PATH_MAX];
	if (find_agent(agent, sizeof agent) != 0) {
		fprintf(stderr, "stitch-trace record: libstitch-agent.so not found (set STITCH_TRACE_AGENT)\n");
		return 1;
	}
	char absdir[PATH_MAX];
	int created_dir;
	if (prepare_dir("record", sel.dir, &created_dir) != 0)
		return 1;
	if (!realpath(sel.dir, absdir)) {
		fprintf(stderr, "stitch-trace record: %s: %s\n", sel.dir, strerror(errno));
		return 1;
	}
	setenv("STITCH_TRACE_DIR", absdir, 1);
	setenv("STITCH_TRACE_FILTER", sel.filter, 1);
	setenv("STITCH_TRACE_GRAPH", sel.graph ? "1" : "0", 1);
	setenv("STITCH_TRACE_FORK", fork_mode, 1);
	setenv("STITCH_TRACE_CONTROL", control ? "1" : "0", 1);
	setenv("STITCH_TRACE_BLOCK", block ? "1" : "0", 1);
	char self[32];
	snprintf(self, sizeof self, "%d", (int)getpid());
	setenv("STITCH_TRACE_RECORD", self, 1); /* report_write_errors() */
	if (sel.depth[0])
		setenv("STITCH_TRACE_DEPTH", sel.depth, 1);
	else
		unsetenv("STITCH_TRACE_DEPTH");
	if (buffer[0])
		setenv("STITCH_TRACE_BUFFER", buffer, 1);
	else
		unsetenv("STITCH_TRACE_BUFFER");

	/* argv for exec: PROG ARGS, or EMULATOR... -E LD_PRELOAD=agent PROG ARGS */
	char **args = calloc((size_t)argc + 64, sizeof *args);
	char *emu = getenv("STITCH_TRACE_EMULATOR");
	size_t na = 0;
	char preload[PATH_MAX + 64];
	const char *old = getenv("LD_PRELOAD");
	snprintf(preload, sizeof preload, "%s%s%s", agent, old && *old ? ":" : "", old && *old ? old : "");
	if (emu && *emu) {
		/* qemu-user: the guest's LD_PRELOAD goes through -E, or the host's
		 * loader would try to preload a foreign library into qemu */
		emu = strdup(emu);
		for (char *tok = strtok(emu, " "); tok && na < 48; tok = strtok(NULL, " "))
			args[na++] = tok;
		args[na++] = "-E";
		static char e[PATH_MAX + 80];
		snprintf(e, sizeof e, "LD_PRELOAD=%s", preload);
		args[na++] = e;
	} else {
		setenv("LD_PRELOAD", preload, 1);
	}
	for (int i = optind; i < argc; i++)
		args[na++] = argv[i];
	args[na] = NULL;

	/* The program owns the terminal's signals; we wait for it. */
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "stitch-trace record: fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGQUIT, SIG_DFL);
		execvp(args[0], args);
		fprintf(stderr, "stitch-trace record: cannot run %s: %s\n", args[0], strerror(errno));
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			fprintf(stderr, "stitch-trace record: waitpid: %s\n", strerror(errno));
			return 1;
		}
	int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	int write_errors = report_write_errors();
	struct tr_trace t;
	if (tr_load_opt(absdir, &t, TR_SKIP_EVENTS | TR_QUIET_EMPTY) != 0) {
		if (created_dir)
			rmdir(absdir); /* made for nothing: leave no empty directory behind (fails if not empty) */
		if (rc == 127)
			return rc; /* the program could not be started; the child said why */
		if (write_errors)
			return rc ? rc : 1; /* said why above: not a guess */
		fprintf(stderr, "stitch-trace record: nothing was recorded in %s (is %s dynamically linked?)\n", absdir,
			argv[optind]);
		return rc ? rc : 1;
	}
	if (!recorded_sites(&t)) {
		fprintf(stderr,
			"stitch-trace record: %s has no patchable function entries.\n"
			"  Rebuild it with: %s\n"
			"  (pkg-config --variable=trace_cflags stitch, or cmake/StitchTrace.cmake)\n",
			argv[optind], STITCH_TRACE_CFLAGS);
		return rc ? rc : 1;
	}
	uint64_t events = 0, lost = 0, guard_skipped = 0;
	size_t unclean = 0, running = 0;
	for (size_t i = 0; i < t.nproc; i++) {
		guard_skipped += t.proc[i].guard_skipped;
		/* a process that did not exit cleanly has no totals: count what
		 * its file holds (a killed program's 10 million events were "0") */
		events += t.proc[i].ended ? t.proc[i].end.events : t.proc[i].events_in_file;
		/* and its losses from the loss markers, as report counts them */
		lost += t.proc[i].ended ? t.proc[i].end.lost : t.proc[i].lost_in_file;
		if (t.proc[i].ended)
			continue;
		/* A fork child that outlived the program is still recording, not
		 * dead: record waits for the program only.  (Its pid was in use a
		 * moment ago, so reuse is not a concern here.) */
		if (kill((pid_t)t.proc[i].h.pid, 0) == 0 || errno == EPERM)
			running++;
		else
			unclean++;
	}
	/* without an END record, losses not yet marked in the file are unknown */
	fprintf(stderr, "stitch-trace: %zu process%s, %llu events, %s%llu lost, in %s\n", t.nproc,
		t.nproc == 1 ? "" : "es", (unsigned long long)events, unclean || running ? "at least " : "",
		(unsigned long long)lost, sel.dir);
	if (guard_skipped)
		fprintf(stderr, "stitch-trace: %s\n", out_guard_text(guard_skipped));
	if (running)
		fprintf(stderr, "stitch-trace: %zu process%s (forked by the program) still running: %s recording "
				"goes on until %s\n",
			running, running == 1 ? "" : "es", running == 1 ? "its" : "their",
			running == 1 ? "it exits" : "they exit");
	if (unclean)
		fprintf(stderr, "stitch-trace: %zu process%s did not exit cleanly (events counted from the file; losses and the last events may be missing)\n",
			unclean, unclean == 1 ? "" : "es");
	if (WIFSIGNALED(status))
		fprintf(stderr, "stitch-trace: %s was killed by signal %d\n", argv[optind], WTERMSIG(status));
	return rc;
}

/* ---- commands that read a recording ---------------------------------- */

static const char replay_help[] =
	"usage: stitch-trace replay [--no-time] [DIR]\n"
	"Print the recorded calls per thread as a tree with durations.\n"
	"  --no-time   leave out durations and thread ids\n";
static const char report_help[] =
	"usage: stitch-trace report [-s total|self|calls|name] [DIR]\n"
	"Per function: total time (outermost call of a recursion only), self time, calls.\n"
	"  -s, --sort KEY   order by KEY (default total)\n";
static const char dump_help[] =
	"usage: stitch-trace dump [DIR] (--chrome | --folded [--calls] | --ftrace | --tree [--collapse] | --events)\n"
	"                          [-o FILE]\n"
	"  --chrome    Chrome trace JSON (chrome://tracing, ui.perfetto.dev): X events\n"
	"  --folded    folded stacks for flame-graph tools, value = self time in ns\n"
	"              (--calls: number of calls)\n"
	"  --ftrace    Linux ftrace text (function or function_graph tracer)\n"
	"  --tree      canonical call tree: names and nesting only, threads and\n"
	"              processes sorted (what the tests compare); --collapse\n"
	"              prints runs of identical sibling calls once with *N\n"
	"  --events    every event and filter change, one per line (E/M lines)\n"
	"  -o FILE     write to FILE instead of standard output\n";
static const char flame_help[] =
	"usage: stitch-trace flame [DIR] -o OUT.svg [--title TEXT]\n"
	"Write a flame graph (self time for --graph recordings, calls otherwise).\n";
/* after each reader command's help */
static const char demangle_help[] =
	"  --no-demangle   C++ names as recorded (_ZN3foo3barEv), not foo::bar()\n";

static int read_cmd(int argc, char **argv, const char *cmd)
{
	static const struct option opts[] = {
		{ "no-time", no_argument, NULL, 'T' }, { "sort", required_argument, NULL, 's' },
		{ "chrome", no_argument, NULL, 'c' },  { "folded", no_argument, NULL, 'f' },
		{ "ftrace", no_argument, NULL, 't' },  { "tree", no_argument, NULL, 'r' },
		{ "events", no_argument, NULL, 'e' },
		{ "collapse", no_argument, NULL, 'C' }, { "calls", no_argument, NULL, 'n' },
		{ "output", required_argument, NULL, 'o' }, { "title", required_argument, NULL, 'i' },
		{ "no-demangle", no_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },     { 0 }
	};
	const char *help = strcmp(cmd, "replay") == 0 ? replay_help : strcmp(cmd, "report") == 0 ? report_help
				  : strcmp(cmd, "dump") == 0 ? dump_help : flame_help;
	int show_time = 1, sort = SORT_TOTAL, format = 0, collapse = 0, calls = 0, c;
	const char *outpath = NULL, *title = "stitch-trace flame graph";
	optind = 1;
	while ((c = getopt_long(argc, argv, ":s:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'T': show_time = 0; break;
		case 's':
			if (strcmp(optarg, "total") == 0) sort = SORT_TOTAL;
			else if (strcmp(optarg, "self") == 0) sort = SORT_SELF;
			else if (strcmp(optarg, "calls") == 0) sort = SORT_CALLS;
			else if (strcmp(optarg, "name") == 0) sort = SORT_NAME;
			else return usage_error(cmd, "unknown sort key '%s' (total, self, calls, name)", optarg);
			break;
		case 'c': case 'f': case 't': case 'r': case 'e':
			if (format && format != c)
				return usage_error(cmd, "%s", "choose one of --chrome, --folded, --ftrace, --tree, --events");
			format = c;
			break;
		case 'C': collapse = 1; break;
		case 'M': tr_demangle = 0; break;
		case 'n': calls = 1; break;
		case 'o': outpath = optarg; break;
		case 'i': title = optarg; break;
		case 'h': fputs(help, stdout); fputs(demangle_help, stdout); return 0;
		default: return option_error(cmd, c, argv);
		}
	}
	/* options that do not belong to this command */
	if (strcmp(cmd, "dump") != 0 && (format || collapse || calls))
		return usage_error(cmd, "%s", "--chrome/--folded/--ftrace/--tree/--events are options of dump");
	if (strcmp(cmd, "dump") == 0 && !format)
		return usage_error(cmd, "%s", "which format? --chrome, --folded, --ftrace, --tree or --events");
	if (strcmp(cmd, "flame") == 0 && !outpath)
		return usage_error(cmd, "%s", "-o OUT.svg is required");
	if (optind + 1 < argc)
		return usage_error(cmd, "unexpected argument '%s'", argv[optind + 1]);
	const char *dir = optind < argc ? argv[optind] : DEFAULT_DIR;
	struct tr_trace t;
	if (tr_load(dir, &t) != 0)
		return 1;
	FILE *out = stdout;
	if (outpath && !(out = fopen(outpath, "w"))) {
		fprintf(stderr, "stitch-trace %s: %s: %s\n", cmd, outpath, strerror(errno));
		return 1;
	}
	if (strcmp(cmd, "replay") == 0)
		out_replay(out, &t, show_time);
	else if (strcmp(cmd, "report") == 0)
		out_report(out, &t, sort);
	else if (strcmp(cmd, "flame") == 0)
		out_flame(out, &t, title);
	else if (format == 'c')
		out_chrome(out, &t);
	else if (format == 'f')
		out_folded(out, &t, !calls);
	else if (format == 't')
		out_ftrace(out, &t);
	else if (format == 'e')
		out_events(out, &t);
	else
		out_tree(out, &t, collapse);
	if (fflush(out) != 0 || ferror(out) || (out != stdout && fclose(out) != 0)) {
		fprintf(stderr, "stitch-trace %s: write error: %s\n", cmd, strerror(errno));
		return 1;
	}
	return 0;
}

/* ---- live ------------------------------------------------------------- */

static const char live_help[] =
	"usage: stitch-trace live PID|DIR COMMAND [ARG]\n"
	"Control a program recording under `stitch-trace record` (DIR: every\n"
	"process of that recording still running).\n"
	"  enable GLOB     also trace functions matching GLOB\n"
	"  disable GLOB    stop tracing functions matching GLOB\n"
	"  graph on|off    record returns or not\n"
	"  pause, resume   stop/restart tracing (code is restored while paused)\n"
	"  status          sites, enabled sites, events, lost events\n"
	"  detach          stop tracing for good: original code back, file closed\n"
	"Exit status: 0 all done, 1 refused or unreachable, 2 usage error.\n";

/* The state letter of a stat file of /proc ('?' if unreadable). */
static char stat_state(const char *path)
{
	char stat_line[1024] = "";
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(stat_line, 1, sizeof stat_line - 1, f) : 0;
	if (f)
		fclose(f);
	stat_line[n] = '\0';
	/* the state follows the last ')': the command name may hold any byte */
	char *paren = strrchr(stat_line, ')');
	return paren && paren[1] == ' ' ? paren[2] : '?';
}

/* The state letter of /proc/PID/stat: its main thread's ('?' if unreadable). */
static char proc_state(long pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	return stat_state(path);
}

/* The state of a stopped process (T or t), else 0.  A process whose main
 * thread has exited shows that thread's Z: its other threads say. */
static char proc_stopped(long pid)
{
	char state = proc_state(pid);
	if (state == 'T' || state == 't')
		return state;
	if (state != 'Z')
		return 0;
	char dir[64];
	snprintf(dir, sizeof dir, "/proc/%ld/task", pid);
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	char found = 0;
	for (struct dirent *de; !found && (de = readdir(d));) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		char path[PATH_MAX];
		snprintf(path, sizeof path, "%s/%s/stat", dir, de->d_name);
		char s = stat_state(path);
		if (s == 'T' || s == 't')
			found = s;
	}
	closedir(d);
	return found;
}

/* Send one request to pid; print the answer.  0 done, 1 refused/failed. */
#define LIVE_TIMEOUT_S 60

static int live_send(pid_t pid, const uint8_t *req, size_t len)
{
	errno = 0;
	char path[108];
	const char *why = "";
	if (stitch_trace_ctl_socket_path(path, sizeof path, pid, 0, &why) != 0) {
		fprintf(stderr, "stitch-trace live: %d: %s\n", (int)pid, why);
		return 1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		int err = errno;
		int stale = stitch_trace_ctl_remove_stale(pid, path); /* killed before it could remove it */
		if (stale == 1) {
			fprintf(stderr, "stitch-trace live: %d: no such process (its stale socket %s is removed)\n",
				(int)pid, path);
		} else if (stale == 0) {
			fprintf(stderr, "stitch-trace live: %d: no such process\n", (int)pid);
		} else {
			fprintf(stderr, "stitch-trace live: %d: cannot reach %s: %s (not recording with control?)\n",
				(int)pid, path, strerror(err));
		}
		if (fd >= 0)
			close(fd);
		return 1;
	}
	/* A stopped process would answer only once continued: say so now
	 * rather than after LIVE_TIMEOUT_S. */
	char state = proc_stopped(pid);
	if (state) {
		fprintf(stderr, "stitch-trace live: %d: the process is stopped (state %c): continue it first (kill -CONT %d)\n",
			(int)pid, state, (int)pid);
		close(fd);
		return 1;
	}
	/* A process that does not answer (stopped since, or busy in a long
	 * switch) is given LIVE_TIMEOUT_S, not forever. */
	struct timeval tv = { LIVE_TIMEOUT_S, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	/* MSG_NOSIGNAL: a process that exits between connect and send must
	 * give a message, not kill us with SIGPIPE (exit 141, nothing said). */
	for (size_t off = 0; off < len;) {
		ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (errno == EPIPE || errno == ECONNRESET)
				fprintf(stderr, "stitch-trace live: %d: the process closed the connection before the request "
						"was sent (did it exit?)\n", (int)pid);
			else
				fprintf(stderr, "stitch-trace live: %d: %s\n", (int)pid, strerror(errno));
			close(fd);
			return 1;
		}
		off += (size_t)w;
	}
	uint8_t buf[CTL_MAX_REPLY + 8];
	size_t got = 0;
	for (;;) {
		ssize_t k = read(fd, buf + got, sizeof buf - 1 - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	int timed_out = errno == EAGAIN || errno == EWOULDBLOCK;
	close(fd);
	if (got < 5) {
		if (timed_out)
			fprintf(stderr, "stitch-trace live: %d: no answer within %d s (is the process stopped?)\n",
				(int)pid, LIVE_TIMEOUT_S);
		else
			fprintf(stderr, "stitch-trace live: %d: no answer\n", (int)pid);
		return 1;
	}
	uint32_t n = (uint32_t)buf[0] | (uint32_t)buf[1] << 8 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 24;
	if (n < 1 || n + 4 != got) {
		fprintf(stderr, "stitch-trace live: %d: malformed answer\n", (int)pid);
		return 1;
	}
	buf[got] = '\0';
	fprintf(buf[4] ? stderr : stdout, "%d: %s\n", (int)pid, (char *)buf + 5);
	return buf[4] ? 1 : 0;
}

static int cmd_live(int argc, char **argv)
{
	if (argc >= 2 && is_help(argv[1])) {
		fputs(live_help, stdout);
		return 0;
	}
	if (argc < 3)
		return usage_error("live", "%s", "usage: stitch-trace live PID|DIR COMMAND [ARG]");
	int cmd = 0;
	for (int c = CTL_STATUS; c <= CTL_DETACH; c++)
		if (strcmp(argv[2], stitch_trace_ctl_name(c)) == 0)
			cmd = c;
	if (!cmd)
		return usage_error("live", "unknown command '%s'", argv[2]);
	int wants_arg = cmd == CTL_ENABLE || cmd == CTL_DISABLE || cmd == CTL_GRAPH;
	if (wants_arg != (argc == 4) || argc > 4)
		return usage_error("live", wants_arg ? "'%s' takes one argument" : "'%s' takes no argument", argv[2]);
	uint8_t req[CTL_MAX_REQUEST];
	size_t len = stitch_trace_ctl_encode(req, sizeof req, cmd, wants_arg ? argv[3] : NULL);
	if (!len)
		return usage_error("live", "bad argument '%s' (a glob without spaces not starting with '!'; graph on|off)",
				   argv[3]);
	char *end;
	long pid = strtol(argv[1], &end, 10);
	if (!*end && pid > 0)
		return live_send((pid_t)pid, req, len);
	/* DIR: every process of the recording still running.  Only the
	 * headers are read: the files may be large and still growing. */
	DIR *d = opendir(argv[1]);
	if (!d) {
		fprintf(stderr, "stitch-trace live: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	pid_t pids[256];
	size_t npids = 0;
	struct dirent *de;
	while ((de = readdir(d)) && npids < sizeof pids / sizeof *pids) {
		size_t n = strlen(de->d_name);
		if (strncmp(de->d_name, "trace-", 6) != 0 || n < 10 || strcmp(de->d_name + n - 4, ".dat") != 0)
			continue;
		char path[PATH_MAX];
		snprintf(path, sizeof path, "%s/%s", argv[1], de->d_name);
		FILE *f = fopen(path, "rb");
		struct st_file_header h;
		int ok = f && fread(&h, sizeof h, 1, f) == 1 && memcmp(h.magic, ST_MAGIC, 8) == 0;
		if (f)
			fclose(f);
		char sock[108];
		const char *why;
		/* running, and listening (fork children and processes without
		 * traceable functions have no control socket) */
		if (!ok || kill((pid_t)h.pid, 0) != 0 ||
		    stitch_trace_ctl_socket_path(sock, sizeof sock, (pid_t)h.pid, 0, &why) != 0 || access(sock, F_OK) != 0)
			continue;
		int dup = 0;
		for (size_t i = 0; i < npids; i++)
			dup |= pids[i] == (pid_t)h.pid; /* exec'ed images share the pid */
		if (!dup)
			pids[npids++] = (pid_t)h.pid;
	}
	closedir(d);
	if (!npids) {
		fprintf(stderr, "stitch-trace live: no process of %s is running with a control socket\n", argv[1]);
		return 1;
	}
	int failed = 0;
	for (size_t i = 0; i < npids; i++)
		failed |= live_send(pids[i], req, len);
	return failed;
}

/* ---- attach ----------------------------------------------------------- */

static const char attach_help[] =
	"usage: stitch-trace attach PID [-F GLOB]... [-N GLOB]... [--graph] [--depth N] [-o DIR]\n"
	"Load the tracing agent into running process PID (built with patchable entries)\n"
	"by ptrace, and return once it records into DIR.  The program runs on; stop\n"
	"with `stitch-trace live PID detach` (its original code is restored).\n"
	"x86-64 only.  Needs ptrace permission over PID.\n";

/* Does the ELF file have a section of patchable entries (what the agent
 * traces)?  1 yes, 0 no, -1 unreadable. */
static int elf_has_entries(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	Elf64_Ehdr eh;
	int found = -1;
	if (fread(&eh, sizeof eh, 1, f) == 1 && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
	    eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_shentsize == sizeof(Elf64_Shdr) && eh.e_shnum > 0 &&
	    eh.e_shstrndx < eh.e_shnum) {
		Elf64_Shdr *sh = calloc(eh.e_shnum, sizeof *sh);
		Elf64_Shdr str;
		if (sh && fseek(f, (long)eh.e_shoff, SEEK_SET) == 0 && fread(sh, sizeof *sh, eh.e_shnum, f) == eh.e_shnum) {
			str = sh[eh.e_shstrndx];
			char *names = str.sh_size < (1u << 24) ? malloc(str.sh_size + 1) : NULL;
			if (names && fseek(f, (long)str.sh_offset, SEEK_SET) == 0 &&
			    fread(names, 1, str.sh_size, f) == str.sh_size) {
				names[str.sh_size] = '\0';
				found = 0;
				for (unsigned i = 0; i < eh.e_shnum && !found; i++)
					if (sh[i].sh_name < str.sh_size && sh[i].sh_size > 0 &&
					    (strcmp(names + sh[i].sh_name, "__patchable_function_entries") == 0 ||
					     strcmp(names + sh[i].sh_name, "__mcount_loc") == 0))
						found = 1;
			}
			free(names);
		}
		free(sh);
	}
	fclose(f);
	return found;
}

/*
 * Before anything else: a process we may and can inject into.  Not one of
 * another user (the agent there could not read the configuration from our
 * private directory, nor be controlled by us), not a stopped one (dlopen
 * would wait for a SIGCONT: attach waited 60 s and left the agent loaded
 * and recording), not one whose main thread has exited (dlopen runs on
 * it; its maps are empty, which read as "no patchable entries").  0, or 1
 * with a message.
 */
static int attach_target_check(long pid)
{
	char path[64], line[512];
	snprintf(path, sizeof path, "/proc/%ld/status", pid);
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "stitch-trace attach: %ld: %s\n", pid, strerror(errno));
		return 1;
	}
	long ruid = -1, euid = -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "Uid: %ld %ld", &ruid, &euid) == 2)
			break;
	fclose(f);
	if (ruid != (long)getuid() || euid != (long)getuid()) {
		fprintf(stderr,
			"stitch-trace attach: process %ld belongs to uid %ld, not to you (uid %ld): run attach as "
			"uid %ld\n",
			pid, euid != (long)getuid() ? euid : ruid, (long)getuid(), euid != (long)getuid() ? euid : ruid);
		return 1;
	}
	char state = proc_state(pid);
	if (state == 'T' || state == 't') {
		fprintf(stderr,
			"stitch-trace attach: process %ld is stopped (state %c): continue it first (kill -CONT %ld), "
			"or detach its debugger\n",
			pid, state, pid);
		return 1;
	}
	if (state == 'Z' || state == 'X') {
		fprintf(stderr,
			"stitch-trace attach: the main thread of process %ld has exited (state %c): attach runs "
			"dlopen on the main thread and cannot trace this process\n",
			pid, state);
		return 1;
	}
	return 0;
}

/* Before attaching: the agent must not be loaded already, and some module
 * of the process must have patchable entries.  0, or 1 with a message. */
static int attach_precheck(long pid)
{
	char path[64], line[4096];
	snprintf(path, sizeof path, "/proc/%ld/maps", pid);
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "stitch-trace attach: %ld: %s\n", pid, strerror(errno));
		return 1;
	}
	/* One pass over the maps: is the agent loaded, has any module entries? */
	int entries = 0, has_agent = 0;
	char last[4096] = "";
	while (fgets(line, sizeof line, f)) {
		char *file = strchr(line, '/');
		if (!file)
			continue;
		file[strcspn(file, "\n")] = '\0';
		has_agent |= strstr(file, "libstitch-agent") != NULL;
		if (!entries && strcmp(file, last) != 0) {
			snprintf(last, sizeof last, "%s", file);
			char mapped[PATH_MAX];
			/* the process's own view of the file (another mount namespace) */
			snprintf(mapped, sizeof mapped, "/proc/%ld/root%s", pid, file);
			entries = elf_has_entries(mapped) == 1;
		}
	}
	fclose(f);
	if (has_agent) {
		/* With a control socket it is being traced: live reaches it.
		 * Without, it was detached (or recorded with --no-control): the
		 * agent stays loaded and idle, and cannot start again. */
		char sock[108];
		const char *why;
		if (stitch_trace_ctl_socket_path(sock, sizeof sock, (pid_t)pid, 0, &why) == 0 && access(sock, F_OK) == 0)
			fprintf(stderr,
				"stitch-trace attach: process %ld has the agent loaded already (recorded, or attached "
				"before): control it with `stitch-trace live %ld`\n",
				pid, pid);
		else
			fprintf(stderr,
				"stitch-trace attach: process %ld has the agent loaded but idle (traced and detached "
				"before, or recorded with --no-control): tracing it again after a detach is not "
				"possible; restart the program to trace it again\n",
				pid);
		return 1;
	}
	if (!entries) {
		fprintf(stderr,
			"stitch-trace attach: no module of process %ld has patchable function entries.\n"
			"  Rebuild the program with: %s\n"
			"  (pkg-config --variable=trace_cflags stitch, or cmake/StitchTrace.cmake)\n",
			pid, STITCH_TRACE_CFLAGS);
		return 1;
	}
	return 0;
}

static int cmd_attach(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "filter", required_argument, NULL, 'F' }, { "notrace", required_argument, NULL, 'N' },
		{ "graph", no_argument, NULL, 'g' },        { "depth", required_argument, NULL, 'D' },
		{ "output", required_argument, NULL, 'o' }, { "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct select_opts sel = { .dir = DEFAULT_DIR };
	int c, rc;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":F:N:gD:o:h", opts, NULL)) != -1) {
		if ((rc = select_opt("attach", c, &sel)) >= 0) {
			if (rc)
				return rc;
			continue;
		}
		if (c == 'h') {
			fputs(attach_help, stdout);
			return 0;
		}
		return option_error("attach", c, argv);
	}
	if (optind + 1 != argc)
		return usage_error("attach", "%s", "one PID expected");
	if (sel.depth[0] && !sel.graph)
		return usage_error("attach", "%s", "--depth needs --graph (depth is known from returns)");
	char *end;
	long pid = strtol(argv[optind], &end, 10);
	if (*end || pid <= 0)
		return usage_error("attach", "not a process id: '%s'", argv[optind]);
	if (kill((pid_t)pid, 0) != 0) {
		fprintf(stderr, "stitch-trace attach: %ld: %s\n", pid, strerror(errno));
		return 1;
	}
	if (attach_target_check(pid) != 0 || attach_precheck(pid) != 0)
		return 1;
	char agent[PATH_MAX], absdir[PATH_MAX];
	if (find_agent_named(agent, sizeof agent, "libstitch-agent-dl.so") != 0) {
		fprintf(stderr, "stitch-trace attach: libstitch-agent-dl.so not found (set STITCH_TRACE_AGENT to "
				"the path of libstitch-agent.so next to it)\n");
		return 1;
	}
	char agent_abs[PATH_MAX];
	if (!realpath(agent, agent_abs)) {
		fprintf(stderr, "stitch-trace attach: %s: %s\n", agent, strerror(errno));
		return 1;
	}
	int created_dir;
	if (prepare_dir("attach", sel.dir, &created_dir) != 0) /* it says why */
		return 1;
	if (!realpath(sel.dir, absdir)) {
		fprintf(stderr, "stitch-trace attach: %s: %s\n", sel.dir, strerror(errno));
		return 1;
	}
	static char e_dir[PATH_MAX + 32], e_filter[8192 + 32], e_graph[32], e_depth[64];
	snprintf(e_dir, sizeof e_dir, "STITCH_TRACE_DIR=%s", absdir);
	snprintf(e_filter, sizeof e_filter, "STITCH_TRACE_FILTER=%s", sel.filter);
	snprintf(e_graph, sizeof e_graph, "STITCH_TRACE_GRAPH=%d", sel.graph);
	snprintf(e_depth, sizeof e_depth, "STITCH_TRACE_DEPTH=%s", sel.depth[0] ? sel.depth : "0");
	const char *env[] = { e_dir, e_filter, e_graph, e_depth, "STITCH_TRACE_CONTROL=1", "STITCH_TRACE_FORK=stop",
			      NULL };
	if (stitch_trace_attach((pid_t)pid, agent_abs, env) != 0) {
		if (created_dir)
			rmdir(absdir); /* nothing will be recorded there */
		return 1;
	}
	/* The agent's constructor made its control socket before dlopen
	 * returned: ask it how it went. */
	uint8_t req[CTL_MAX_REQUEST];
	size_t len = stitch_trace_ctl_encode(req, sizeof req, CTL_STATUS, NULL);
	if (live_send((pid_t)pid, req, len) != 0) {
		fprintf(stderr, "stitch-trace attach: the agent is loaded but does not answer\n");
		return 1;
	}
	fprintf(stderr, "stitch-trace: attached to %ld, recording into %s; stop with `stitch-trace live %ld detach`\n",
		pid, sel.dir, pid);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage_main(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (is_help(cmd)) {
		usage_main(stdout);
		return 0;
	}
	if (strcmp(cmd, "record") == 0)
		return cmd_record(argc - 1, argv + 1);
	if (strcmp(cmd, "replay") == 0 || strcmp(cmd, "report") == 0 || strcmp(cmd, "dump") == 0 ||
	    strcmp(cmd, "flame") == 0)
		return read_cmd(argc - 1, argv + 1, cmd);
	if (strcmp(cmd, "live") == 0)
		return cmd_live(argc - 1, argv + 1);
	if (strcmp(cmd, "attach") == 0)
		return cmd_attach(argc - 1, argv + 1);
	fprintf(stderr, "stitch-trace: unknown command '%s'\n", cmd);
	usage_main(stderr);
	return 2;
}
