/*
 * surplus/surplus.h - everything a surplus plugin needs, in one include.
 */
#ifndef SURPLUS_SURPLUS_H
#define SURPLUS_SURPLUS_H

#include <surplus/host.h>
#include <surplus/plugin.h>
#include <surplus/storage.h>
#include <surplus/accounting.h>
#include <surplus/accelerator.h>

#endif /* SURPLUS_SURPLUS_H */
