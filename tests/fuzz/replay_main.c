/* Corpus replay driver for the libFuzzer targets: calls
 * LLVMFuzzerTestOneInput on every regular file of the directory argv[1], so
 * saved corpora run as ordinary tests without clang. Prints "N inputs
 * replayed" and exits 0; a crash or sanitizer report fails the test. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    DIR *d = opendir(argv[1]);
    if (!d) {
        fprintf(stderr, "cannot open corpus directory %s\n", argv[1]);
        return 1;
    }
    unsigned n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", argv[1], de->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        FILE *f = fopen(path, "rb");
        if (!f) {
            fprintf(stderr, "cannot read %s\n", path);
            closedir(d);
            return 1;
        }
        size_t cap = (size_t)st.st_size;
        uint8_t *buf = malloc(cap ? cap : 1);
        size_t len = buf ? fread(buf, 1, cap, f) : 0;
        fclose(f);
        if (!buf) {
            closedir(d);
            return 1;
        }
        /* an exact-size copy so that ASan sees reads past the input */
        uint8_t *exact = malloc(len ? len : 1);
        if (exact) {
            memcpy(exact, buf, len);
            LLVMFuzzerTestOneInput(exact, len);
            free(exact);
        }
        free(buf);
        n++;
    }
    closedir(d);
    printf("%u inputs replayed\n", n);
    return 0;
}
