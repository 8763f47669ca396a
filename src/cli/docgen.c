/*
 * docgen.c - `dm help --man` and `dm help --bash-completion`: dm(1) and
 * the bash completion of dm, written from the command table, so that
 * neither can say something the commands do not do. The build runs them
 * (src/cli/meson.build) and `make install` installs what they wrote.
 *
 * Always true: every command of dm_cli_commands is in both, with the
 * options its usage line and its help name; nothing else is.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "util/manpage.h"

#include "util/banned.h"

#define WORD_MAX 64

static void write_commands_section(FILE *f)
{
	char title[512];

	dm_man_section(f, "COMMANDS");
	for (const struct dm_cli_cmd *c = dm_cli_commands; c->name; c++) {
		snprintf(title, sizeof(title), "dm %s%s%s", c->name, *c->args ? " " : "", c->args);
		dm_man_subsection(f, title);
		snprintf(title, sizeof(title), "%c%s.", toupper((unsigned char)c->summary[0]),
			 c->summary + 1);
		dm_man_paragraph(f, title);
		dm_man_verbatim(f, c->help);
	}
}

void dm_cli_write_man(FILE *f)
{
	dm_man_begin(f, "dm", "1", "git for data volumes: commit, branch, roll back, push and pull "
				   "the directories that databases write into");
	dm_man_section(f, "SYNOPSIS");
	dm_man_verbatim(f, "dm [-c FILE] [--remote NAME] [-v] COMMAND [ARGS]\n"
			   "dm help [COMMAND [SUBCOMMAND]]");
	dm_man_section(f, "DESCRIPTION");
	dm_man_paragraph(f, DM_CLI_ABOUT);
	dm_man_paragraph(f, "Each command below is also explained by 'dm help COMMAND' and "
			    "'dm COMMAND --help'. Every command takes the common options.");
	write_commands_section(f);
	dm_man_section(f, "COMMON OPTIONS");
	dm_man_verbatim(f, DM_CLI_COMMON_OPTIONS);
	dm_man_section(f, "ENVIRONMENT");
	dm_man_verbatim(f, "DM_CONFIG   the config file, instead of ~/.dm/config\n"
			   "DM_DMD      the dmd program that 'dm cluster' runs, instead of the\n"
			   "            one next to dm or in PATH");
	dm_man_section(f, "FILES");
	dm_man_verbatim(f, "~/.dm/config  the remotes (servers, users, API keys, pinned CAs)\n"
			   "              and the current remote and dot; mode 0600");
	dm_man_section(f, "EXIT STATUS");
	dm_man_paragraph(f, "0 on success; 2 for a usage error; another non-zero status, "
			    "with one line on standard error saying what failed and what to do, "
			    "otherwise.");
	dm_man_section(f, "SEE ALSO");
	dm_man_paragraph(f, "dmd(8)");
}

/* ---- bash completion ---- */

/* Whether word is among the n words of list. */
static bool listed(char (*list)[WORD_MAX], size_t n, const char *word)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(list[i], word))
			return true;
	return false;
}

/* Adds word (len bytes) to list unless it is there or the list is full. */
static void add_word(char (*list)[WORD_MAX], size_t *n, size_t max, const char *word, size_t len)
{
	char w[WORD_MAX];

	if (len == 0 || len >= WORD_MAX || *n >= max)
		return;
	memcpy(w, word, len);
	w[len] = '\0';
	if (!listed(list, *n, w))
		snprintf(list[(*n)++], WORD_MAX, "%s", w);
}

/* The options that text names: "-X" and "--long-name" where an option
 * can start (after a space, '[', '|' or a line's start). */
static void scan_options(const char *text, char (*list)[WORD_MAX], size_t *n, size_t max)
{
	for (const char *p = text; *p; p++) {
		size_t len = 0;

		if (*p != '-' || (p > text && !strchr(" [|\n", p[-1])))
			continue;
		if (p[1] == '-')
			len = 2;
		else if (isalpha((unsigned char)p[1]) &&
			 (!p[2] || strchr(" ]|,\n", p[2])))
			len = 1;
		else
			continue;
		while (isalnum((unsigned char)p[len]) || (p[len] == '-' && len > 2))
			len++;
		if (len > 2 || (len == 2 && p[1] != '-'))
			add_word(list, n, max, p, len);
		p += len - 1;
	}
}

/* The words that may follow prefix ("" for dm itself, "cluster" for a
 * group): the first word of each command name after it. */
static size_t next_words(const char *prefix, char (*list)[WORD_MAX], size_t max)
{
	size_t n = 0, plen = strlen(prefix);

	for (const struct dm_cli_cmd *c = dm_cli_commands; c->name; c++) {
		const char *rest = c->name;

		if (plen) {
			if (strncmp(c->name, prefix, plen) || c->name[plen] != ' ')
				continue;
			rest = c->name + plen + 1;
		}
		add_word(list, &n, max, rest, strcspn(rest, " "));
	}
	return n;
}

static void print_words(FILE *f, char (*list)[WORD_MAX], size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%s", i ? " " : "", list[i]);
}

void dm_cli_write_completion(FILE *f)
{
	char words[128][WORD_MAX], subs[64][WORD_MAX], opts[96][WORD_MAX], groups[64][WORD_MAX];
	size_t nwords = next_words("", words, 128), ngroups = 0;

	fputs("# bash completion of dm, written by 'dm help --bash-completion' from dm's\n"
	      "# command table: commands, subcommands and each command's options.\n"
	      "_dm_words() {\n"
	      "\tcase \"$1\" in\n",
	      f);
	fputs("\t\" -\") echo -c --config --remote -v --verbose -h --help --version ;;\n", f);
	fputs("\t\"\") echo help ", f);
	print_words(f, words, nwords);
	fputs(" ;;\n", f);
	/* every group, at any depth ("cluster", "s3", "s3 remote"): what
	 * may follow it */
	for (const struct dm_cli_cmd *c = dm_cli_commands; c->name; c++) {
		for (const char *sp = strchr(c->name, ' '); sp; sp = strchr(sp + 1, ' ')) {
			size_t len = (size_t)(sp - c->name), nsubs;
			char prefix[WORD_MAX];

			if (len >= WORD_MAX)
				break;
			memcpy(prefix, c->name, len);
			prefix[len] = '\0';
			if (listed(groups, ngroups, prefix))
				continue;
			add_word(groups, &ngroups, 64, prefix, len);
			nsubs = next_words(prefix, subs, 64);
			fprintf(f, "\t\"%s\") echo ", prefix);
			print_words(f, subs, nsubs);
			fputs(" ;;\n", f);
		}
	}
	for (const struct dm_cli_cmd *c = dm_cli_commands; c->name; c++) {
		size_t nopts = 0;

		scan_options(c->args, opts, &nopts, 96);
		scan_options(c->help, opts, &nopts, 96);
		scan_options(DM_CLI_COMMON_OPTIONS, opts, &nopts, 96);
		fprintf(f, "\t\"%s -\") echo ", c->name);
		print_words(f, opts, nopts);
		fputs(" ;;\n", f);
	}
	fputs("\tesac\n"
	      "}\n"
	      "\n"
	      "_dm() {\n"
	      "\tlocal cur=${COMP_WORDS[COMP_CWORD]} cmd=\"\" w i\n"
	      "\t# the command words so far, past the global options and their values\n"
	      "\tfor ((i = 1; i < COMP_CWORD; i++)); do\n"
	      "\t\tw=${COMP_WORDS[i]}\n"
	      "\t\tcase \"$w\" in\n"
	      "\t\t-c | --config | --remote) ((i++)) ;;\n"
	      "\t\t-*) ;;\n"
	      "\t\t*) if [ -z \"$cmd\" ] || [[ \" $(_dm_words \"$cmd\") \" == *\" $w \"* ]]; then\n"
	      "\t\t\tcmd=${cmd:+$cmd }$w\n"
	      "\t\t   fi ;;\n"
	      "\t\tesac\n"
	      "\tdone\n"
	      "\tif [[ $cur == -* ]]; then\n"
	      "\t\tCOMPREPLY=($(compgen -W \"$(_dm_words \"$cmd -\")\" -- \"$cur\"))\n"
	      "\telse\n"
	      "\t\tCOMPREPLY=($(compgen -W \"$(_dm_words \"$cmd\")\" -- \"$cur\"))\n"
	      "\tfi\n"
	      "}\n"
	      "complete -o default -F _dm dm\n",
	      f);
}
