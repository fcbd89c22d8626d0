module k8s-workers.invalid/lab/echo

go 1.26
