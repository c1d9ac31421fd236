
/*
 * Copyright (C) ngx_tavus_module authors
 *
 * A main() for the libFuzzer harnesses without libFuzzer: runs
 * LLVMFuzzerTestOneInput() once on each file named, as libFuzzer would
 * (an exact-size heap copy), so that t/41-fuzz-regressions.t replays the
 * seeds and the saved crashes with any compiler's sanitizers.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
main(int argc, char **argv)
{
    int       i;
    long      len;
    FILE     *f;
    uint8_t  *data;

    for (i = 1; i < argc; i++) {
        f = fopen(argv[i], "rb");
        if (f == NULL) {
            perror(argv[i]);
            return 2;
        }

        if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0
            || fseek(f, 0, SEEK_SET) != 0)
        {
            perror(argv[i]);
            return 2;
        }

        data = malloc(len ? len : 1);
        if (data == NULL || fread(data, 1, len, f) != (size_t) len) {
            perror(argv[i]);
            return 2;
        }

        fclose(f);

        (void) LLVMFuzzerTestOneInput(data, len);

        free(data);
    }

    return 0;
}
