#!/bin/sh
# Stands in for an Envoy that starts but never becomes ready, so a run stays in its
# bring-up phase until interrupted. exec keeps it one process, as Envoy is.
exec sleep 600
