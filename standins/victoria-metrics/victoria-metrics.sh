#!/bin/sh
# /victoria-metrics-prod in the stand-in image: Debian's victoria-metrics binary. Its
# build reports an empty version (-version prints nothing), so answer -version with
# the package's, which the build checked against versions.yaml.
case ${1:-} in
    -version | --version) dpkg-query -W -f='victoria-metrics ${Version}\n' victoria-metrics; exit 0 ;;
esac
exec /usr/bin/victoria-metrics "$@"
