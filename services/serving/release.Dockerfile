# Serving *release* image: the runtime image plus exactly one exported bento, so what serves is
# immutable. Build with the extracted bento directory (`bentoml export` + untar) as the context:
#   docker build -f services/serving/release.Dockerfile \
#     --build-arg RUNTIME_IMAGE=mlops-serving-runtime:latest --build-arg MODEL_NAME=churn --build-arg MODEL_VERSION=3 \
#     -t mlops-serving:v3 <extracted bento dir>
ARG RUNTIME_IMAGE=mlops-serving-runtime:latest
FROM ${RUNTIME_IMAGE}
ARG MODEL_NAME=unknown
ARG MODEL_VERSION=unknown
LABEL org.opencontainers.image.title="mlops-serving" \
      mlops.model-version="${MODEL_VERSION}"
COPY --chown=10001:10001 . /home/app/bento
# The runtime image installs nothing more: a package the bento needs (the model's, as MLflow logged them)
# that it lacks, or has at another version, stops the build here, naming it, not a server at its first import.
RUN python /home/app/bento/src/services/serving/requirements_check.py \
      /home/app/bento/env/python/requirements.txt "${MODEL_NAME}" "${MODEL_VERSION}"
