/* quoterd's version, for --version and quoterd_build_info. */
#ifndef QUOTERD_VERSION_H
#define QUOTERD_VERSION_H

#ifndef QUOTERD_VERSION
#define QUOTERD_VERSION "0.1.0"
#endif

#endif
