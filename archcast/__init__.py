"""archcast: the `archcast` console command, a thin layer over the packages that do the work."""
