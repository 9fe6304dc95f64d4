/* SPDX-License-Identifier: Apache-2.0 */
/* replay — runs seed corpora through a fuzz target without libFuzzer, so
 * every test run exercises them with any compiler. Arguments are files or
 * directories (their regular files, in name order). Exits 1 when an input
 * cannot be read or when no input was found at all, so a lost corpus is
 * noticed; a failed check inside the target aborts. */
#include "fuzz.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Reads <path> whole and feeds it to the target. Returns 0, or -1 when the
 * file cannot be read. */
static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data = NULL;
    long size;
    int rc = -1;

    if (!f)
        goto out;
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        goto out_close;
    data = malloc(size ? (size_t)size : 1);
    if (!data || fread(data, 1, (size_t)size, f) != (size_t)size)
        goto out_free;
    LLVMFuzzerTestOneInput(data, (size_t)size);
    rc = 0;
out_free:
    free(data);
out_close:
    fclose(f);
out:
    if (rc)
        fprintf(stderr, "replay: cannot read %s\n", path);
    return rc;
}

static int not_hidden(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

/* Replays every regular file of directory <dir>; adds them to *count. */
static int replay_dir(const char *dir, long *count)
{
    struct dirent **names;
    int n = scandir(dir, &names, not_hidden, alphasort);
    int rc = 0;

    if (n < 0) {
        fprintf(stderr, "replay: cannot list %s\n", dir);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;

        snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (replay_file(path) != 0)
                rc = -1;
            (*count)++;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    long count = 0;
    int rc = 0;

    for (int i = 1; i < argc; i++) {
        struct stat st;

        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            if (replay_dir(argv[i], &count) != 0)
                rc = 1;
        } else {
            if (replay_file(argv[i]) != 0)
                rc = 1;
            count++;
        }
    }
    printf("replayed %ld input(s)\n", count);
    return rc || count == 0 ? 1 : 0;
}
